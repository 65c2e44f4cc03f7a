/* stopper_int.h - stopper files inside the io layer (stopper_json.c), for
 * policy_json.c, which loads either kind of policy file. */
#ifndef ES_IO_STOPPER_INT_H
#define ES_IO_STOPPER_INT_H

#include "earlystop_io.h"

/* json: a parsed object (json_t *).  1 when it is a stopper file. */
int es_io_is_stopper(const void *json);
/* The stopper in it and the spec it stands for (default "learned"). */
int es_io_stopper_from_json(const void *json, const char *path, es_stopper **out, char *spec, size_t spec_cap,
                            es_error *err);

#endif
