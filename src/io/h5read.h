/* Internal: reading numeric inputs from HDF5 and text files with clear errors. */
#ifndef CSDE_IO_H5READ_H
#define CSDE_IO_H5READ_H

#include <stddef.h>
#include "corrsde/status.h"

/* Read dataset `dset` of HDF5 file `path` as doubles into a new array (free with free()).
 * rank receives the rank (at most 4), dims the shape. CSDE_EIO with the path, dataset
 * and reason on any failure. */
int csde_h5_read(const char *path, const char *dset, double **out, int *rank,
                 size_t dims[4], csde_err *err);

/* Read every number of a text file (whitespace or comma separated; '#' starts a
 * comment) into a new array. */
int csde_text_read(const char *path, double **out, size_t *n, csde_err *err);

/* Split "F.h5:/dataset" at the ':' before the last '/' section: 1 if it has that form
 * (path and dset filled, at most len-1 characters each), 0 otherwise. */
int csde_split_h5_path(const char *s, char *path, size_t plen, char *dset, size_t dlen);

/* Format a shape as "[3, 4]" into buf. */
void csde_shape_str(const size_t *dims, int rank, char *buf, size_t len);

#endif
