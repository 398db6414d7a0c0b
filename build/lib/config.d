build/lib/config.o: lib/config.c lib/config.h lib/errmsg.h lib/macro.h \
 lib/attest.h lib/policy.h lib/fileio.h lib/openssl-util.h lib/platform.h \
 lib/variant.h lib/evidence.h
lib/config.h:
lib/errmsg.h:
lib/macro.h:
lib/attest.h:
lib/policy.h:
lib/fileio.h:
lib/openssl-util.h:
lib/platform.h:
lib/variant.h:
lib/evidence.h:
