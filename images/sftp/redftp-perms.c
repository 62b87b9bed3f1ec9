/*
 * redftp-perms DIR: make every regular file in DIR readable and writable for its group (redftp,
 * the group of the landing zone, which redsys belongs to), whatever mode the sFTP client asked
 * for. Runs as root in the sFTP container, next to sshd.
 *
 * Why: OpenSSH's internal-sftp creates a file with the mode the client sends in its OPEN request
 * (`sftp put` sends the local file's mode), and `-u umask` can only take bits away. A file
 * uploaded as 0600 would be unreadable for redsys and could never be loaded. Upstream OpenSSH
 * has no option to force a mode (`-m` exists only as a distribution patch), so this watcher
 * adds the group bits when a file is closed after writing, renamed into DIR, or has its mode
 * changed (a later SETSTAT), and once for every file present at start.
 *
 * It never follows a link (O_NOFOLLOW) and touches regular files only; set-id bits are dropped.
 * Each change is logged to stderr (docker logs of the sftp container). Exits non-zero if DIR
 * cannot be watched, so that the container's entrypoint stops and Docker restarts it.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define GROUP_RW (S_IRGRP | S_IWGRP)

static const char *top;

static void fix(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return; /* gone (claimed by a watcher) or a link: nothing to do */
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)
        && ((st.st_mode & GROUP_RW) != GROUP_RW || (st.st_mode & (S_ISUID | S_ISGID)))) {
        mode_t mode = (st.st_mode & 0777) | GROUP_RW;
        if (fchmod(fd, mode) == 0)
            fprintf(stderr, "redftp-perms: %s/%s mode %04o -> %04o (uid %u)\n", top, name,
                    (unsigned)(st.st_mode & 07777), (unsigned)mode, (unsigned)st.st_uid);
        else
            fprintf(stderr, "redftp-perms: %s/%s: chmod: %s\n", top, name, strerror(errno));
    }
    close(fd);
}

static int scan(int dirfd)
{
    int fd = dup(dirfd);
    DIR *dir = fd < 0 ? NULL : fdopendir(fd);
    if (dir == NULL)
        return -1;
    struct dirent *ent;
    while ((ent = readdir(dir)) != NULL)
        if (ent->d_type == DT_REG || ent->d_type == DT_UNKNOWN)
            fix(dirfd, ent->d_name);
    closedir(dir);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: redftp-perms DIR\n");
        return 2;
    }
    top = argv[1];
    int dirfd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int in = inotify_init1(IN_CLOEXEC);
    if (dirfd < 0 || in < 0
        || inotify_add_watch(in, top, IN_CLOSE_WRITE | IN_MOVED_TO | IN_ATTRIB | IN_ONLYDIR) < 0) {
        fprintf(stderr, "redftp-perms: cannot watch %s: %s\n", top, strerror(errno));
        return 1;
    }
    /* watching first, then the scan: a file closed in between is seen by one or the other */
    if (scan(dirfd) < 0) {
        fprintf(stderr, "redftp-perms: cannot read %s: %s\n", top, strerror(errno));
        return 1;
    }
    fprintf(stderr, "redftp-perms: watching %s\n", top);
    char buf[16 * (sizeof(struct inotify_event) + NAME_MAX + 1)]
        __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t len = read(in, buf, sizeof buf);
        if (len < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "redftp-perms: read: %s\n", strerror(errno));
            return 1;
        }
        for (char *p = buf; p < buf + len;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            if (ev->mask & IN_Q_OVERFLOW)
                scan(dirfd); /* events were lost: look at everything */
            else if (ev->mask & (IN_IGNORED | IN_UNMOUNT)) {
                fprintf(stderr, "redftp-perms: %s is gone\n", top);
                return 1;
            } else if (ev->len > 0 && !(ev->mask & IN_ISDIR))
                fix(dirfd, ev->name);
            p += sizeof(struct inotify_event) + ev->len;
        }
    }
}
