build/lib/attest.o: lib/attest.c lib/attest.h lib/errmsg.h lib/macro.h \
 lib/policy.h lib/encoding.h lib/evidence.h lib/openssl-util.h \
 lib/secret.h lib/tpm-parse.h lib/tpm.h lib/variant.h
lib/attest.h:
lib/errmsg.h:
lib/macro.h:
lib/policy.h:
lib/encoding.h:
lib/evidence.h:
lib/openssl-util.h:
lib/secret.h:
lib/tpm-parse.h:
lib/tpm.h:
lib/variant.h:
