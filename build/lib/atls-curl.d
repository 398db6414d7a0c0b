build/lib/atls-curl.o: lib/atls-curl.c lib/atls-curl.h lib/atls.h \
 lib/attest.h lib/errmsg.h lib/macro.h lib/policy.h
lib/atls-curl.h:
lib/atls.h:
lib/attest.h:
lib/errmsg.h:
lib/macro.h:
lib/policy.h:
