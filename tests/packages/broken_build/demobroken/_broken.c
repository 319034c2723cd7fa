/* This file does not compile, on purpose (install-atomic test fixture). */
#include <Python.h>

static const char *VERSION = "@VERSION@";

this is a syntax error (demo-broken is broken on purpose
