/* libFuzzer target: the snapshot file reader (src/store/snapfile.c), which reads files a
 * crash may have torn, a disk may have damaged, or a peer may have sent. The input is a
 * file's bytes, written to a memory file and read back through its /proc path. Byte 0,
 * bit 0 clear: the rest is the whole file as is (mostly refused by its trailer). Bit 0
 * set: the rest gets a valid trailer (the magic of version byte 1 % 6, the length and the
 * CRC-32C), so the header, members and text records are parsed past the checksum. Every
 * read must end in an answer: 0 with a header that stays inside the file, or an error;
 * never a crash, a read outside the file, or an allocation beyond the named limits. */
#define _GNU_SOURCE /* memfd_create */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "store/snapfile.h"
#include "util/crc32c.h"

static void check_file(const char *path, uint64_t size)
{
    struct snapfile_info info;
    uint64_t body = 0;
    int verified = snapfile_verify(path, &body);
    if (snapfile_inspect(path, &info) != 0) {
        if (verified == 0) abort(); /* verify reads the header too */
        return;
    }
    if (info.body_offset + info.body_bytes > size) abort();
    if (verified == 0 && body != info.body_bytes) abort();
    if (info.has_members && (info.members_len == 0 || info.members_len > SNAPFILE_MEMBERS_BYTES_MAX))
        abort();
    if (info.has_text) {
        if (info.text_offset + info.text_len > info.body_offset) abort();
        char *text = NULL;
        if (snapfile_script_text(path, &info, &text) == 0) free(text);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    int fd = memfd_create("snapfile", 0);
    if (fd < 0) return 0;
    const uint8_t *p = data + 2;
    size_t n = size - 2;
    int ok = write(fd, p, n) == (ssize_t)n;
    if (ok && (data[0] & 1)) {
        unsigned char t[20];
        snprintf((char *)t, 9, "LRSNAP%02d", data[1] % 6);
        for (int i = 0; i < 8; i++) t[8 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
        uint32_t crc = crc32c(0, p, n);
        for (int i = 0; i < 4; i++) t[16 + i] = (unsigned char)(crc >> (24 - 8 * i));
        ok = write(fd, t, sizeof t) == (ssize_t)sizeof t;
        n += sizeof t;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    if (ok) check_file(path, n);
    close(fd);
    return 0;
}
