#!/bin/sh
# usage: hello.sh PORT [WORKERS=1]
#
# nginx answering /plaintext with `return 200 'Hello, World!'` (text/plain) on 127.0.0.1:PORT,
# in the foreground: the fastest nginx can answer a request, for benches/run.sh's plaintext
# comparison. Its configuration lives in /tmp/peers-nginx-PORT.
set -eu
port=$1 workers=${2:-1}
nginx=$(command -v nginx || echo /usr/sbin/nginx)
base=/tmp/peers-nginx-$port
mkdir -p "$base"
cat > "$base/nginx.conf" <<CONF
daemon off;
worker_processes $workers;
pid $base/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
    access_log off;
    tcp_nodelay on;
    keepalive_requests 1000000;
    client_body_temp_path $base/body;
    proxy_temp_path $base/proxy;
    fastcgi_temp_path $base/fastcgi;
    uwsgi_temp_path $base/uwsgi;
    scgi_temp_path $base/scgi;
    server {
        listen 127.0.0.1:$port;
        location = /plaintext { default_type text/plain; return 200 'Hello, World!'; }
    }
}
CONF
exec "$nginx" -p "$base" -c "$base/nginx.conf"
