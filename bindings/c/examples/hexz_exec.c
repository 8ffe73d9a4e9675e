/*
 * Run a program that only accepts a model *path* on a model held in a .hxz
 * archive, without writing the model to disk: the original file is rebuilt
 * in an anonymous memory file (hexz_memfd) and the program gets
 * /proc/self/fd/N in place of every "{}" argument.
 *
 * usage: hexz_exec MODEL.hxz COMMAND [ARGS...]    e.g.
 *        hexz_exec gemma.hxz llama-simple -m {} -n 16 "The capital of France is"
 *
 * Linux only (memfd). hexz_memfd's descriptor is close-on-exec, as a
 * library's descriptors should be; this program clears the flag so that the
 * one program it runs inherits it.
 */
#define _GNU_SOURCE
#include <hexz.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.hxz COMMAND [ARGS...]   ({} becomes the model's path)\n", argv[0]);
        return 2;
    }
    hexz_archive *model = NULL;
    int fd = -1;
    hexz_status s = hexz_open_path(argv[1], NULL, &model);
    if (s == HEXZ_STATUS_OK) s = hexz_memfd(model, &fd);
    if (s != HEXZ_STATUS_OK) {
        fprintf(stderr, "hexz_exec: %s: %s\n", hexz_status_str(s), hexz_last_error());
        hexz_close(model);
        return 1;
    }
    hexz_close(model);
    if (fcntl(fd, F_SETFD, 0) != 0) {
        perror("hexz_exec: fcntl");
        return 1;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    char **args = calloc((size_t)argc, sizeof *args);
    for (int i = 2; i < argc; i++) args[i - 2] = strcmp(argv[i], "{}") == 0 ? path : argv[i];
    execvp(args[0], args);
    perror("hexz_exec: exec");
    return 127;
}
