/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Subcommands of the `arca` CLI; each gets argv starting at its name. */
int verb_verify(int argc, char **argv);
int verb_platform(int argc, char **argv);
int verb_config(int argc, char **argv);
int verb_init(int argc, char **argv);
int verb_mini(int argc, char **argv);
int verb_recover(int argc, char **argv);

/* "host", "host:port", "[v6]", "[v6]:port" -> "https://host:port<path>". */
int cli_node_url(const char *node, int default_port, const char *path, char **ret);
