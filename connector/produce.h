/*
 * produce.h - `imgsink produce`.
 */
#ifndef IS_PRODUCE_H
#define IS_PRODUCE_H

#include "config.h"

/* argv[0] is "produce". Returns the process exit code. */
int is_produce_main(is_config_t *cfg, int argc, char **argv);

#endif
