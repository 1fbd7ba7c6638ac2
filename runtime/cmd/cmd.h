/* cmd.h: the subcommands of schedsim-operator, one file each (cmd_<name>.c).
 * Each takes the arguments after the subcommand name (argv[0] is the
 * subcommand) and returns the process exit code: 0 success, 1 runtime
 * failure, 2 usage or input error (doc/development.md, "Command line"). */
#ifndef SCHEDSIM_CMD_H
#define SCHEDSIM_CMD_H

int cmd_run(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_render(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_version(int argc, char **argv);

#endif
