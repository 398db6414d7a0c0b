/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* CLOCK_MONOTONIC for deadlines and measurements, and a sleep that is not
 * cut short by signals. */

#include <stdint.h>

/* Milliseconds, for deadlines. */
uint64_t now_ms(void);
/* Seconds with nanosecond resolution, for measurements and progress. */
double now_s(void);
/* Sleep ms milliseconds, resuming after EINTR. */
void sleep_ms(unsigned ms);
