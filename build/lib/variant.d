build/lib/variant.o: lib/variant.c lib/variant.h lib/errmsg.h lib/macro.h \
 lib/evidence.h
lib/variant.h:
lib/errmsg.h:
lib/macro.h:
lib/evidence.h:
