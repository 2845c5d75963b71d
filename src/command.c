/* placeholder, filled in by the node split */
typedef int command_placeholder;
