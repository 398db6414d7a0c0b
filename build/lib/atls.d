build/lib/atls.o: lib/atls.c lib/atls.h lib/attest.h lib/errmsg.h \
 lib/macro.h lib/policy.h lib/evidence.h lib/openssl-util.h lib/secret.h \
 lib/variant.h
lib/atls.h:
lib/attest.h:
lib/errmsg.h:
lib/macro.h:
lib/policy.h:
lib/evidence.h:
lib/openssl-util.h:
lib/secret.h:
lib/variant.h:
