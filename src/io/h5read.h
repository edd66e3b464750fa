/* Internal: reading numeric inputs from HDF5 and text files with clear errors. */
#ifndef CSDE_IO_H5READ_H
#define CSDE_IO_H5READ_H

#include <stddef.h>
#include "corrsde/io.h"
#include "corrsde/status.h"

/* Read dataset `dset` of HDF5 file `path` as doubles into a new array (free with free()).
 * rank receives the rank (at most 4), dims the shape. An error (CSDE_EIO, CSDE_EBADLEN or
 * CSDE_ENOMEM) with the path, dataset and reason on any failure: this is
 * csde_h5_read_array (corrsde/io.h, with every check on a hostile file) with
 * max_rank 4 and the default bound on the bytes read; a caller with a bound of its own
 * calls that. */
int csde_h5_read(const char *path, const char *dset, double **out, int *rank,
                 size_t dims[4], csde_err *err);

/* 1 if dataset dset exists in HDF5 file path, a regular file, reached through hard links
 * only (csde_h5_exists); 0 for any failure, quietly: the caller's HDF5 error handler is
 * kept. */
int csde_h5_has(const char *path, const char *dset);

/* The largest text file of numbers csde_text_read accepts (64 MiB: some 4 million
 * numbers; larger columns belong in an HDF5 dataset). */
#define CSDE_TEXT_MAX_BYTES ((unsigned long long)64 << 20)

/* Read every number of a text file (whitespace or comma separated; '#' starts a
 * comment) into a new array. Refused, each with its own message: a file that is not
 * regular (a device such as /dev/zero, a pipe, a directory: CSDE_EIO), one larger than
 * CSDE_TEXT_MAX_BYTES (CSDE_EBADLEN), an HDF5 file (CSDE_EBADLEN: it needs
 * F.h5:/dataset), a NUL byte (CSDE_ESPEC, with its offset) and an empty entry between
 * commas (CSDE_ESPEC, see csde_list_check_entries). */
int csde_text_read(const char *path, double **out, size_t *n, csde_err *err);

/* CSDE_ESPEC if the first len characters of s, a list of numbers separated by commas
 * and/or blanks, have an empty entry: ",1", "1,,2", "1, ,2" or "1,". The message gives
 * the entry's 1-based position. */
int csde_list_check_entries(const char *s, size_t len, csde_err *err);

/* csde_split_h5_path and csde_shape_str: corrsde/io.h. */

#endif
