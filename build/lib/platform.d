build/lib/platform.o: lib/platform.c lib/platform.h lib/errmsg.h \
 lib/macro.h lib/openssl-util.h lib/tpm-parse.h lib/tpm.h
lib/platform.h:
lib/errmsg.h:
lib/macro.h:
lib/openssl-util.h:
lib/tpm-parse.h:
lib/tpm.h:
