build/lib/fileio.o: lib/fileio.c lib/fileio.h lib/macro.h
lib/fileio.h:
lib/macro.h:
