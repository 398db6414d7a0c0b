/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Shape checks for values that arrive from outside (wire messages,
 * configuration): true only for exactly the accepted form. */

#include <stdbool.h>
#include <stddef.h>

#define NODE_NAME_MAX 63
#define UUID_STRING_SIZE 37
#define ENDPOINT_MAX 64
#define CIDR_MAX 44
#define ADDRESS_MAX 46
#define WG_KEY_B64_SIZE 45

/* DNS label-ish: [a-z0-9] first and last, [a-z0-9.-] inside, <= 63. */
bool valid_node_name(const char *s);
/* Canonical UUID, any case. */
bool valid_uuid(const char *s);
/* IPv4/IPv6 literal. */
bool valid_address(const char *s);
/* "host:port" or "[v6]:port", host an address or a node name, port 1-65535. */
bool valid_endpoint(const char *s);
/* "a.b.c.d/n" with the host bits zero. */
bool valid_cidr4(const char *s);
/* base64 of exactly 32 bytes (a WireGuard public key). */
bool valid_wg_key(const char *s);
/* One of "control-plane", "worker". */
bool valid_role(const char *s);
