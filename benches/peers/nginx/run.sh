#!/bin/sh
# usage: run.sh PORT [DIR=/tmp/peers-files] [WORKERS=1] [files|hello|https CERT KEY]
#
# nginx on 127.0.0.1:PORT in the foreground (stop it with kill on its master PID, or the PID in
# /tmp/peers-nginx-PORT/nginx.pid). `files` (the default) serves DIR as one serves static files
# fast: sendfile on, tcp_nopush on, no access log, keep-alive on. `hello` answers /plaintext with
# `return 200 'Hello, World!'` (text/plain): the fastest nginx answers a request, for the
# TechEmpower-style comparison. `https` serves DIR as `files` does, over TLS 1.3 only with
# TLS_AES_256_GCM_SHA384 (OpenSSL in user space: no kTLS, so no sendfile under TLS), with the
# PEM certificate and key given. Its configuration and temporary files live in
# /tmp/peers-nginx-PORT.
set -eu
port=$1 dir=${2:-/tmp/peers-files} workers=${3:-1} mode=${4:-files} cert=${5:-} key=${6:-}
tls=""
if [ "$mode" = https ]; then
  tls="ssl; ssl_certificate $cert; ssl_certificate_key $key; ssl_protocols TLSv1.3;
        ssl_conf_command Ciphersuites TLS_AES_256_GCM_SHA384; ssl_session_cache shared:S:1m"
fi
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
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    client_body_temp_path $base/body;
    proxy_temp_path $base/proxy;
    fastcgi_temp_path $base/fastcgi;
    uwsgi_temp_path $base/uwsgi;
    scgi_temp_path $base/scgi;
    types { application/octet-stream bin; }
    server {
        listen 127.0.0.1:$port $tls;
        root $dir;
        location / { }
        $( [ "$mode" = hello ] && echo "location = /plaintext { default_type text/plain; return 200 'Hello, World!'; }" )
    }
}
CONF
exec "$nginx" -p "$base" -c "$base/nginx.conf"
