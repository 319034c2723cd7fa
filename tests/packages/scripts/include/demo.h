/* install-atomic test fixture header. */
#ifndef DEMO_SCRIPTS_H
#define DEMO_SCRIPTS_H
#define DEMO_SCRIPTS_VERSION "@VERSION@"
#endif
