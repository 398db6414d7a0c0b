build/tests/unit/test-core.o: tests/unit/test-core.c lib/encoding.h \
 lib/errmsg.h lib/macro.h lib/hkdf.h lib/json-util.h lib/secret.h
lib/encoding.h:
lib/errmsg.h:
lib/macro.h:
lib/hkdf.h:
lib/json-util.h:
lib/secret.h:
