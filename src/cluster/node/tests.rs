//! Tests of a node without a socket: replies are fed as RESP bytes, output read back as commands.
