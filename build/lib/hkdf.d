build/lib/hkdf.o: lib/hkdf.c lib/hkdf.h lib/openssl-util.h lib/errmsg.h \
 lib/macro.h
lib/hkdf.h:
lib/openssl-util.h:
lib/errmsg.h:
lib/macro.h:
