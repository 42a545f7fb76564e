#include "CTestSupport.h"
#include <sys/prctl.h>

int cts_set_child_subreaper(int on) { return prctl(PR_SET_CHILD_SUBREAPER, (unsigned long)on, 0, 0, 0); }
