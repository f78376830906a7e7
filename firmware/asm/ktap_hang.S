/* After passing KTAP results (ktap-guest.h), hangs until the timeout stops it. */
#include "ktap-guest.h"
ending:
1:  jmp 1b
