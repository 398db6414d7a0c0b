build/lib/evidence.o: lib/evidence.c lib/evidence.h lib/errmsg.h \
 lib/macro.h lib/encoding.h lib/json-util.h
lib/evidence.h:
lib/errmsg.h:
lib/macro.h:
lib/encoding.h:
lib/json-util.h:
