/*
 * client.h: the daemon's own client for its control socket:
 * "switchboard -x CMD" and the remote console "switchboard -r".
 */
#ifndef SB_CLIENT_H
#define SB_CLIENT_H

/* Exit statuses of -x, as documented in switchboard(8). */
#define SB_EXIT_OK      0
#define SB_EXIT_FAIL    1
#define SB_EXIT_NODAEMON 2

/* Run one command and print its output; returns an SB_EXIT_* status. */
int sb_client_exec(const char *socket, const char *command, int timeout_s);
/* The interactive console; returns an exit status. */
int sb_client_console(const char *socket);

#endif
