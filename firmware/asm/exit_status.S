/* Writes 42 to the test-exit device: mmiolab must exit with status 42. */
#include "mmiolab.h"
    .code64
    .globl _start
_start:
    exit 42
