/* testhelp.h: the tiny test macros of the C unit tests (antirez/sds style).
 * test_cond("description", expr) checks and prints one line per condition;
 * test_report() prints the totals and exits non-zero when anything failed.
 * Each test-<topic>.c is one ctest test; the counters are per program. */
#ifndef SCHEDSIM_TESTHELP_H
#define SCHEDSIM_TESTHELP_H

#include <stdio.h>
#include <stdlib.h>

static int testhelp_failed = 0, testhelp_num = 0;

#define test_cond(descr, _c)                                                                       \
  do {                                                                                             \
    testhelp_num++;                                                                                \
    if (_c) {                                                                                      \
      printf("%d - %s: PASSED\n", testhelp_num, descr);                                            \
    } else {                                                                                       \
      printf("%d - %s: FAILED (%s:%d)\n", testhelp_num, descr, __FILE__, __LINE__);                \
      testhelp_failed++;                                                                           \
    }                                                                                              \
  } while (0)

/* Like test_cond, but prints only failures (for checks inside loops). */
#define test_cond_quiet(descr, _c)                                                                 \
  do {                                                                                             \
    testhelp_num++;                                                                                \
    if (!(_c)) {                                                                                   \
      printf("%d - %s: FAILED (%s:%d)\n", testhelp_num, descr, __FILE__, __LINE__);                \
      testhelp_failed++;                                                                           \
    }                                                                                              \
  } while (0)

#define test_report()                                                                              \
  do {                                                                                             \
    printf("%d tests, %d passed, %d failed\n", testhelp_num, testhelp_num - testhelp_failed,       \
           testhelp_failed);                                                                       \
    if (testhelp_failed) {                                                                         \
      printf("=== WARNING === We have failed tests here...\n");                                    \
      exit(1);                                                                                     \
    }                                                                                              \
  } while (0)

#endif
