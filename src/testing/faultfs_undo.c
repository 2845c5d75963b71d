/*
 * faultfs's memory of what is not durable (the model is in faultfs.h): the saved pages of
 * files written since their last fsync, the directory changes since each directory's last
 * fsync, and the power loss that takes them all back.
 */
#define _GNU_SOURCE /* renameat2's flags are not needed, but dirent's d_type is */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testing/faultfs.h"

struct faultfs_page
{
    off_t index;
    unsigned char *data; /* the page's durable bytes (zeros past the durable size) */
};

struct faultfs_file
{
    dev_t dev;
    ino_t ino;
    int fd;             /* our own descriptor: the file may be closed, renamed or unlinked */
    off_t durable_size; /* its size at its last fsync (or when first seen) */
    struct faultfs_page *pages;
    size_t n, cap;
    struct faultfs_file *next;
};

struct faultfs_entry
{
    enum faultfs_op op;
    dev_t dir_dev; /* the directory whose fsync makes it durable */
    ino_t dir_ino;
    char *rel, *rel2, *grave;
};

const char *faultfs_rel(const char *path)
{
    while (*path == '/') {
        path++;
    }
    return *path == '\0' ? "." : path;
}

/* Makes room for one more element in the array *items of n used and *cap allocated. */
static int room_for_one(void **items, size_t n, size_t *cap, size_t size)
{
    if (n < *cap) {
        return 0;
    }
    size_t grown = *cap ? *cap * 2 : 16;
    void *p = realloc(*items, grown * size);
    if (p == NULL) {
        return -1;
    }
    *items = p;
    *cap = grown;
    return 0;
}

static struct faultfs_file *find_file(struct faultfs *fs, int fd, struct faultfs_file ***link)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        return NULL;
    }
    for (struct faultfs_file **p = &fs->files; *p != NULL; p = &(*p)->next) {
        if ((*p)->dev == st.st_dev && (*p)->ino == st.st_ino) {
            if (link != NULL) {
                *link = p;
            }
            return *p;
        }
    }
    return NULL;
}

static struct faultfs_file *file_of(struct faultfs *fs, int fd)
{
    struct faultfs_file *f = find_file(fs, fd, NULL);
    if (f != NULL) {
        return f;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || (f = calloc(1, sizeof *f)) == NULL) {
        return NULL;
    }
    f->fd = dup(fd);
    if (f->fd < 0) {
        free(f);
        return NULL;
    }
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->durable_size = st.st_size;
    f->next = fs->files;
    fs->files = f;
    return f;
}

static struct faultfs_page *page_of(struct faultfs_file *f, off_t index)
{
    for (size_t i = 0; i < f->n; i++) {
        if (f->pages[i].index == index) {
            return &f->pages[i];
        }
    }
    return NULL;
}

/* Saves page index as it is durably: what the file holds now below the durable size (no
 * write since the last fsync has touched it yet), zeros from there on. */
static int save_page(struct faultfs_file *f, off_t index)
{
    if (page_of(f, index) != NULL) {
        return 0;
    }
    if (room_for_one((void **)&f->pages, f->n, &f->cap, sizeof *f->pages) != 0) {
        return -ENOMEM;
    }
    unsigned char *data = calloc(1, FAULTFS_PAGE);
    if (data == NULL) {
        return -ENOMEM;
    }
    off_t start = index * FAULTFS_PAGE;
    ssize_t got = pread(f->fd, data, FAULTFS_PAGE, start);
    if (got < 0) {
        free(data);
        return -errno;
    }
    if (start + FAULTFS_PAGE > f->durable_size) {
        off_t keep = f->durable_size > start ? f->durable_size - start : 0;
        memset(data + keep, 0, (size_t)(FAULTFS_PAGE - keep));
    }
    f->pages[f->n++] = (struct faultfs_page){index, data};
    return 0;
}

/* Saves every page that overlaps [from, to). */
static int save_range(struct faultfs_file *f, off_t from, off_t to)
{
    for (off_t i = from / FAULTFS_PAGE; i * FAULTFS_PAGE < to; i++) {
        int rv = save_page(f, i);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

int faultfs_before_write(struct faultfs *fs, int fd, off_t off, off_t len)
{
    struct faultfs_file *f = file_of(fs, fd);
    if (f == NULL) {
        return -ENOMEM;
    }
    off_t end = len < 0 ? f->durable_size : off + len;
    if (end > f->durable_size) {
        end = f->durable_size; /* past it, the truncate to the durable size takes it back */
    }
    return off < end ? save_range(f, off, end) : 0;
}

void faultfs_synced_write(struct faultfs *fs, int fd, const char *buf, size_t len, off_t off)
{
    struct faultfs_file *f = find_file(fs, fd, NULL);
    off_t end = off + (off_t)len;
    if (f == NULL) {
        return;
    }
    /* The bytes written are durable, and so is the size they reach; what lies between the
     * old durable size and them was never synced: zeros (save_page). */
    if (end > f->durable_size && save_range(f, f->durable_size, end) != 0) {
        return; /* out of memory: the write stays unsynced, which is only stricter */
    }
    for (off_t i = off / FAULTFS_PAGE; i * FAULTFS_PAGE < end; i++) {
        struct faultfs_page *p = page_of(f, i);
        off_t from = i * FAULTFS_PAGE > off ? i * FAULTFS_PAGE : off;
        off_t to = (i + 1) * FAULTFS_PAGE < end ? (i + 1) * FAULTFS_PAGE : end;
        if (p != NULL) {
            memcpy(p->data + (from - i * FAULTFS_PAGE), buf + (from - off), (size_t)(to - from));
        }
    }
    if (end > f->durable_size) {
        f->durable_size = end;
    }
}

static void free_file(struct faultfs_file *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->pages[i].data);
    }
    free(f->pages);
    close(f->fd);
    free(f);
}

void faultfs_file_synced(struct faultfs *fs, int fd)
{
    struct faultfs_file **link;
    struct faultfs_file *f = find_file(fs, fd, &link);
    if (f != NULL) {
        *link = f->next;
        free_file(f);
    }
}

/* The directory that holds rel. */
static int parent_of(struct faultfs *fs, const char *rel, struct stat *st)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", rel);
    char *slash = strrchr(dir, '/');
    const char *d = ".";
    if (slash != NULL) {
        *slash = '\0';
        d = dir;
    }
    return fstatat(fs->root, d, st, 0) == 0 ? 0 : -errno;
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

int faultfs_journal(struct faultfs *fs,
                    enum faultfs_op op,
                    const char *rel,
                    const char *rel2,
                    const char *grave)
{
    struct stat st;
    int rv = parent_of(fs, rel, &st);
    if (rv != 0) {
        return rv;
    }
    if (room_for_one((void **)&fs->journal, fs->journal_n, &fs->journal_cap, sizeof *fs->journal) !=
        0) {
        return -ENOMEM;
    }
    fs->journal[fs->journal_n++] = (struct faultfs_entry){
        op, st.st_dev, st.st_ino, strdup(rel), dup_or_null(rel2), dup_or_null(grave)};
    return 0;
}

int faultfs_bury(struct faultfs *fs, const char *rel, char *out, size_t out_size)
{
    snprintf(out, out_size, "%s/%llu", FAULTFS_GRAVE, (unsigned long long)++fs->grave_seq);
    return renameat(fs->root, rel, fs->root, out) == 0 ? 0 : -errno;
}

static void free_entry(struct faultfs_entry *e)
{
    free(e->rel);
    free(e->rel2);
    free(e->grave);
}

int faultfs_dir_synced(struct faultfs *fs, const char *rel)
{
    struct stat st;
    if (fstatat(fs->root, rel, &st, 0) != 0) {
        return -errno;
    }
    size_t kept = 0;
    for (size_t i = 0; i < fs->journal_n; i++) {
        struct faultfs_entry *e = &fs->journal[i];
        if (e->dir_dev == st.st_dev && e->dir_ino == st.st_ino) {
            if (e->grave != NULL) {
                unlinkat(fs->root, e->grave, 0); /* the unlink is durable: gone for good */
            }
            free_entry(e);
        } else {
            fs->journal[kept++] = *e;
        }
    }
    fs->journal_n = kept;
    return 0;
}

/* rm -rf of name in the directory dirfd. */
static void remove_tree(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (fd >= 0) {
        DIR *d = fdopendir(fd);
        struct dirent *de;
        while (d != NULL && (de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
                remove_tree(fd, de->d_name);
            }
        }
        if (d != NULL) {
            closedir(d);
        } else {
            close(fd);
        }
        unlinkat(dirfd, name, AT_REMOVEDIR);
        return;
    }
    unlinkat(dirfd, name, 0);
}

static void complain(const char *what, const char *rel)
{
    fprintf(stderr, "faultfs: power loss: cannot %s %s: %s\n", what, rel, strerror(errno));
}

static void undo_entry(struct faultfs *fs, const struct faultfs_entry *e)
{
    switch (e->op) {
        case FFS_CREATE:
            if (unlinkat(fs->root, e->rel, 0) != 0) {
                complain("take back the creation of", e->rel);
            }
            break;
        case FFS_MKDIR:
            remove_tree(fs->root, e->rel);
            break;
        case FFS_UNLINK:
            if (renameat(fs->root, e->grave, fs->root, e->rel) != 0) {
                complain("bring back", e->rel);
            }
            break;
        case FFS_RMDIR:
            if (mkdirat(fs->root, e->rel, 0755) != 0) {
                complain("bring back", e->rel);
            }
            break;
        case FFS_RENAME:
            if (renameat(fs->root, e->rel2, fs->root, e->rel) != 0) {
                complain("rename back", e->rel2);
            }
            if (e->grave != NULL && renameat(fs->root, e->grave, fs->root, e->rel2) != 0) {
                complain("bring back", e->rel2);
            }
            break;
    }
}

void faultfs_power_loss(struct faultfs *fs)
{
    fs->st.lost_entries = fs->journal_n;
    while (fs->journal_n > 0) {
        struct faultfs_entry *e = &fs->journal[--fs->journal_n];
        undo_entry(fs, e);
        free_entry(e);
    }
    fs->st.lost_pages = 0;
    fs->st.lost_files = 0;
    while (fs->files != NULL) {
        struct faultfs_file *f = fs->files;
        fs->files = f->next;
        for (size_t i = 0; i < f->n; i++) {
            if (pwrite(f->fd, f->pages[i].data, FAULTFS_PAGE, f->pages[i].index * FAULTFS_PAGE) !=
                FAULTFS_PAGE) {
                fprintf(stderr, "faultfs: power loss: cannot restore a page: %s\n",
                        strerror(errno));
            }
        }
        if (ftruncate(f->fd, f->durable_size) != 0) {
            fprintf(stderr, "faultfs: power loss: cannot truncate: %s\n", strerror(errno));
        }
        fs->st.lost_pages += f->n;
        fs->st.lost_files++;
        free_file(f);
    }
    faultfs_clear_grave(fs);
    fs->dead = true;
    fprintf(stderr,
            "faultfs: power loss: took back %llu page(s) of %llu file(s) and %llu directory "
            "change(s); every operation fails with EIO until it is mounted again\n",
            (unsigned long long)fs->st.lost_pages, (unsigned long long)fs->st.lost_files,
            (unsigned long long)fs->st.lost_entries);
}

static int64_t tree_bytes(int parent, const char *name, bool top)
{
    struct stat st;
    if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) {
        return S_ISREG(st.st_mode) ? st.st_size : 0;
    }
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0) {
            close(fd);
        }
        return 0;
    }
    int64_t sum = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
            (top && strcmp(de->d_name, FAULTFS_GRAVE) == 0)) {
            continue;
        }
        sum += tree_bytes(dirfd(d), de->d_name, false);
    }
    closedir(d);
    return sum;
}

int64_t faultfs_total_bytes(struct faultfs *fs)
{
    return tree_bytes(fs->root, ".", true);
}

void faultfs_clear_grave(struct faultfs *fs)
{
    remove_tree(fs->root, FAULTFS_GRAVE);
    if (mkdirat(fs->root, FAULTFS_GRAVE, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "faultfs: cannot create %s: %s\n", FAULTFS_GRAVE, strerror(errno));
    }
}
