/* Fixture template: "@VERSION@" is replaced by tests/helpers.py:make_project(). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *
speed_version(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyUnicode_FromString("@VERSION@");
}

static PyObject *
speed_add(PyObject *self, PyObject *args)
{
    long a, b;
    if (!PyArg_ParseTuple(args, "ll:add", &a, &b)) {
        return NULL;
    }
    return PyLong_FromLong(a + b);
}

static PyMethodDef speed_methods[] = {
    {"version", speed_version, METH_NOARGS, "Return the version this module was built as."},
    {"add", speed_add, METH_VARARGS, "add(a, b) -> a + b"},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef speed_module = {
    PyModuleDef_HEAD_INIT, "_speed", NULL, -1, speed_methods
};

PyMODINIT_FUNC
PyInit__speed(void)
{
    PyObject *m = PyModule_Create(&speed_module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddStringConstant(m, "VERSION", "@VERSION@") < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
