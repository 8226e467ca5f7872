# Sourced: sets NETTY_CP to Debian's Netty 4.1 jars (package libnetty-java).
NETTY_CP=""
for m in common buffer resolver transport codec handler; do
  j=/usr/share/java/netty-$m.jar
  [ -f "$j" ] || { echo "netty: $j is missing (apt-get install libnetty-java)" >&2; return 1 2>/dev/null || exit 1; }
  NETTY_CP="${NETTY_CP:+$NETTY_CP:}$j"
done
export NETTY_CP
