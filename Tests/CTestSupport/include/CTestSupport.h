#ifndef CTESTSUPPORT_H
#define CTESTSUPPORT_H
/// Calls Swift cannot make directly (variadic C functions), for the test-support target only.

/// prctl(PR_SET_CHILD_SUBREAPER, on): orphaned descendants are re-parented to this process.
int cts_set_child_subreaper(int on);
#endif
