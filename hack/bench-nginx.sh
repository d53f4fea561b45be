# shellcheck shell=bash
# Sourced by the bench scripts: nginx configurations for the upstream and for nginx as the proxy
# Portcullis is compared with, written into $WORK, and how an instance is started.

# Writes $WORK/NAME.conf: MAIN (main-context directives: workers, ...) and HTTP (servers).
nginx_conf() { # name main http
  cat > "$WORK/$1.conf" <<CONF
$2
pid $WORK/$1.pid;
error_log $WORK/$1-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/$1-body;
  proxy_temp_path $WORK/$1-proxy;
  fastcgi_temp_path $WORK/$1-fastcgi;
  uwsgi_temp_path $WORK/$1-uwsgi;
  scgi_temp_path $WORK/$1-scgi;
  $3
}
CONF
}

# Starts the nginx of $WORK/NAME.conf (it daemonizes), on CPU if given.
start_nginx() { # name [cpu]
  if [ -n "${2:-}" ]; then taskset -c "$2" nginx -c "$WORK/$1.conf" -p "$WORK"; else nginx -c "$WORK/$1.conf" -p "$WORK"; fi
}

# The upstream both proxies forward to: a small static answer on 127.0.0.1:PORT, plus any
# further LOCATIONS.
upstream_http() { # port [locations]
  echo "server { listen 127.0.0.1:$1; keepalive_requests 1000000;
    location / { default_type text/plain; return 200 'hello from the upstream\n'; }${2:+ $2} }"
}

# nginx proxying 127.0.0.1:LISTEN to the upstream on 127.0.0.1:UPSTREAM, with a keep-alive pool,
# doing what Portcullis does to every request (and what a gateway built on nginx configures):
# the client's Host kept, X-Forwarded-For/-Proto/-Host set. DIRECTIVES are added to the location.
proxy_http() { # listen upstream [directives]
  echo "upstream backend { server 127.0.0.1:$2; keepalive 128; }
  server { listen 127.0.0.1:$1; keepalive_requests 1000000;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection '';
      proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme; proxy_set_header X-Forwarded-Host \$host;${3:+ $3} } }"
}
