"""GPU boxes over SSH (paramiko): hosts files, standing workers (`hpoqueue workers up|down|status`), and the
workers of a `platform: remote` experiment, which reach an embedded broker through the SSH connection."""
