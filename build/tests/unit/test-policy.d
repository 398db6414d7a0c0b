build/tests/unit/test-policy.o: tests/unit/test-policy.c lib/macro.h \
 lib/openssl-util.h lib/errmsg.h lib/policy.h
lib/macro.h:
lib/openssl-util.h:
lib/errmsg.h:
lib/policy.h:
