build/lib/variant-qemu-vtpm.o: lib/variant-qemu-vtpm.c lib/openssl-util.h \
 lib/errmsg.h lib/macro.h lib/tpm.h lib/variant.h lib/evidence.h
lib/openssl-util.h:
lib/errmsg.h:
lib/macro.h:
lib/tpm.h:
lib/variant.h:
lib/evidence.h:
