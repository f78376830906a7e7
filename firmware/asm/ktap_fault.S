/* After passing KTAP results (ktap-guest.h), triple-faults: with no IDT, any exception
 * escalates to a shutdown. */
#include "ktap-guest.h"
ending:
    ud2
