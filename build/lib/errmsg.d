build/lib/errmsg.o: lib/errmsg.c lib/errmsg.h lib/macro.h
lib/errmsg.h:
lib/macro.h:
