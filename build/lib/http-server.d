build/lib/http-server.o: lib/http-server.c lib/http-server.h lib/errmsg.h \
 lib/macro.h lib/json-util.h
lib/http-server.h:
lib/errmsg.h:
lib/macro.h:
lib/json-util.h:
