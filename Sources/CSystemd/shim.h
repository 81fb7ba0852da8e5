#ifndef NETKEEP_CSYSTEMD_H
#define NETKEEP_CSYSTEMD_H
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#include <sys/uio.h>
#endif
