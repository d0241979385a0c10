//! How settings pass down `http` → `server` → `location`, as nginx merges
//! them: a single-valued directive written at an inner level replaces the
//! outer one; for list directives (`proxy_set_header`, `add_header`,
//! `proxy_hide_header`, `ssl_certificate`, `allow`/`deny`) an inner level
//! that writes any of them replaces the whole outer list. Also the
//! directives nginx has that need nothing here, each with the reason.

use std::collections::HashMap;

use super::grammar::Directive;

/// Directives that accumulate into one list per level. `allow` and `deny`
/// share one (their order matters).
const LISTS: [&str; 6] = [
    "proxy_set_header",
    "add_header",
    "proxy_hide_header",
    "ssl_certificate",
    "ssl_certificate_key",
    "access",
];

/// Single-valued directives carried down to where they take effect
/// (`try_files` is not among them: nginx does not pass it down).
const SCALARS: [&str; 30] = [
    "root",
    "index",
    "proxy_http_version",
    "proxy_read_timeout",
    "proxy_connect_timeout",
    "proxy_bind",
    "proxy_send_timeout",
    "ssl_protocols",
    "ssl_ciphers",
    "ssl_session_cache",
    "ssl_session_timeout",
    "ssl_session_tickets",
    "proxy_ssl_trusted_certificate",
    "proxy_ssl_verify",
    "proxy_ssl_certificate",
    "proxy_ssl_certificate_key",
    "proxy_ssl_protocols",
    "proxy_ssl_server_name",
    "proxy_ssl_name",
    "proxy_ssl_session_reuse",
    "proxy_ssl_verify_depth",
    "proxy_ssl_ciphers",
    "limit_conn",
    "client_max_body_size",
    "charset",
    "access_log",
    "error_log",
    "keepalive_timeout",
    "keepalive_requests",
    "real_ip_recursive",
];

/// Whether `name` is a directive this module carries down.
pub fn is_inherited(name: &str) -> bool {
    SCALARS.contains(&name) || LISTS.contains(&list_of(name))
}

/// The list a directive accumulates into.
fn list_of(name: &str) -> &str {
    match name {
        "allow" | "deny" => "access",
        other => other,
    }
}

/// The settings in force at one level.
#[derive(Clone, Debug, Default)]
pub struct Inherited {
    scalars: HashMap<&'static str, Directive>,
    lists: HashMap<&'static str, Vec<Directive>>,
}

impl Inherited {
    /// The settings inside a block whose directives are `level`.
    pub fn enter(&self, level: &[Directive]) -> Inherited {
        let mut next = self.clone();
        let mut replaced: Vec<&str> = Vec::new();
        for d in level {
            if let Some(&key) = SCALARS.iter().find(|k| **k == d.name) {
                next.scalars.insert(key, d.clone());
            } else if let Some(&key) = LISTS.iter().find(|k| **k == list_of(&d.name)) {
                if !replaced.contains(&key) {
                    replaced.push(key);
                    next.lists.insert(key, Vec::new());
                }
                next.lists.entry(key).or_default().push(d.clone());
            }
        }
        next
    }

    pub fn get(&self, name: &str) -> Option<&Directive> {
        self.scalars.get(name)
    }

    /// The first argument of `name`, if set.
    pub fn word(&self, name: &str) -> Option<&str> {
        self.get(name)?.args.first().map(|a| a.text.as_str())
    }

    pub fn list(&self, name: &str) -> &[Directive] {
        self.lists.get(list_of(name)).map_or(&[], Vec::as_slice)
    }
}

/// Directives that need nothing in the proxy, with why: each gets a
/// note, and the translation goes on.
pub fn unnecessary(name: &str) -> Option<&'static str> {
    Some(match name {
        "user" => "the proxy runs as the user that starts it",
        "pid" => "the proxy writes no pid file; systemd tracks it",
        "worker_rlimit_nofile" => {
            "the proxy raises its open-file limit to the hard limit at startup"
        }
        "worker_connections" => {
            "the connection limit follows the open-file limit; [limits] max_connections_per_worker caps it"
        }
        "use" | "multi_accept" | "accept_mutex" | "worker_cpu_affinity" | "worker_priority" => {
            "each worker has its own SO_REUSEPORT listener and epoll loop"
        }
        "load_module" => "the proxy has no modules",
        "sendfile" | "tcp_nopush" | "tcp_nodelay" | "aio" | "directio" => {
            "the proxy sets its socket options itself: sendfile for static files, no Nagle"
        }
        "types" | "default_type" | "types_hash_max_size" | "types_hash_bucket_size" => {
            "static files get a Content-Type from the proxy's own table"
        }
        "server_names_hash_bucket_size" | "server_names_hash_max_size"
        | "variables_hash_max_size" | "variables_hash_bucket_size"
        | "map_hash_bucket_size" | "map_hash_max_size" | "proxy_headers_hash_max_size"
        | "proxy_headers_hash_bucket_size" => "the proxy needs no hash table sizing",
        "server_tokens" => "the proxy's own answers carry no version",
        "gzip_static" => "precompressed .gz files are not looked for; files are sent as they are",
        "expires" => "the proxy adds no Expires or Cache-Control to files: add_header Cache-Control … does",
        name if name.ends_with("_temp_path") => "the proxy writes no temporary files",
        "gzip" | "gzip_types" | "gzip_vary" | "gzip_proxied" | "gzip_comp_level"
        | "gzip_min_length" | "gzip_disable" | "gzip_http_version" | "gzip_buffers" => {
            "the proxy does not compress; answers pass as the upstream sent them"
        }
        "proxy_buffering" | "proxy_buffers" | "proxy_buffer_size" | "proxy_busy_buffers_size"
        | "proxy_request_buffering" | "proxy_max_temp_file_size" | "proxy_temp_path"
        | "client_body_temp_path" | "proxy_temp_file_write_size" => {
            "tunnels are never buffered, and bodies stream through a bounded buffer"
        }
        "proxy_cache_bypass" | "proxy_no_cache" => "the proxy has no cache",
        "proxy_redirect" => "Location fields pass as the upstream wrote them",
        "client_body_buffer_size" | "client_header_buffer_size" | "large_client_header_buffers" => {
            "request heads are bounded by max_header_bytes, 16 KiB by default"
        }
        "client_header_timeout" | "client_body_timeout" | "send_timeout" => {
            "the proxy's handshake timeout, 10s, bounds a request head"
        }
        "reset_timedout_connection" | "lingering_close" | "lingering_time" | "lingering_timeout" => {
            "the proxy's lingering close is fixed: 5s, 64 KiB"
        }
        "ssl_prefer_server_ciphers" => "rustls always chooses by the server's preference",
        "ssl_dhparam" | "ssl_ecdh_curve" => "rustls uses ECDHE with its own curves",
        "ssl_stapling" | "ssl_stapling_verify" | "ssl_trusted_certificate" => {
            "the proxy does not staple OCSP answers"
        }
        "ssl_buffer_size" | "ssl_early_data" => "rustls sizes its own records, without 0-RTT",
        "resolver" | "resolver_timeout" => "upstream names are resolved once at startup",
        "log_format" | "open_log_file_cache" | "log_not_found" | "log_subrequest" => {
            "the access log has its own text and JSON formats"
        }
        "server_name_in_redirect" | "port_in_redirect" | "absolute_redirect" => {
            "the proxy's redirects name the request's Host"
        }
        "etag" | "if_modified_since" => "static files always carry an ETag and Last-Modified",
        "open_file_cache" | "open_file_cache_valid" | "open_file_cache_min_uses"
        | "open_file_cache_errors" => "static files are opened per request",
        "keepalive_disable" | "keepalive_time" => "keep-alive follows keepalive_timeout only",
        "http2_max_concurrent_streams" | "http2_push" | "http2_push_preload" => {
            "the proxy speaks HTTP/1.1 to clients"
        }
        "proxy_pass_request_headers" | "proxy_pass_request_body" | "proxy_set_body" => {
            "requests always pass whole"
        }
        "proxy_intercept_errors" | "error_page" | "recursive_error_pages" => {
            "an upstream's answers pass as it sent them; the proxy's own errors are short plain text"
        }
        "proxy_next_upstream" | "proxy_next_upstream_tries" | "proxy_next_upstream_timeout" => {
            "the next server is tried when one refuses or times out, never after it answered"
        }
        "merge_slashes" | "msie_padding" | "msie_refresh" | "chunked_transfer_encoding" => {
            "the proxy passes targets and framing as they came"
        }
        "daemon" | "master_process" | "timer_resolution" | "worker_shutdown_timeout"
        | "thread_pool" | "lock_file" | "pcre_jit" | "env" | "debug_connection" => {
            "process settings of nginx's own"
        }
        "limit_conn_zone" => "its limit is the limit_conn that uses it",
        "limit_conn_status" | "limit_conn_log_level" => {
            "the proxy answers 429 past its per-address limit"
        }
        "real_ip_header" => "handled with set_real_ip_from",
        "zone" => "upstream state is per worker and passive health is shared as it is",
        _ => return None,
    })
}

/// Directives that cannot be expressed, with what to do about them.
pub fn unsupported(name: &str) -> Option<&'static str> {
    if name.starts_with("lua_")
        || name.contains("_by_lua")
        || name.starts_with("js_")
        || name.starts_with("perl")
        || name.starts_with("fastcgi_")
        || name.starts_with("uwsgi_")
        || name.starts_with("scgi_")
        || name.starts_with("grpc_")
        || name.starts_with("memcached_")
    {
        return Some("the proxy runs no scripts and speaks only HTTP/1.1 and WebSocket upstream: move this logic to the application");
    }
    Some(match name {
        "if" => "conditions are not supported: express the condition as a location, or move it to the application",
        "set" => "variables cannot be set: write the values where they are used",
        "auth_request" | "auth_basic" | "auth_basic_user_file" | "auth_jwt" => {
            "the proxy does not authenticate: let the application check credentials"
        }
        "njs" => "the proxy runs no scripts: move this logic to the application",
        "proxy_cache" | "proxy_cache_path" | "proxy_cache_key" | "proxy_cache_valid" => {
            "the proxy has no cache: remove it, or keep a cache in front"
        }
        "sub_filter" | "sub_filter_once" | "sub_filter_types" => {
            "the proxy does not edit bodies: remove it"
        }
        "limit_req" | "limit_req_zone" | "limit_rate" => {
            "request-rate limits are not supported: remove it, or use limit_conn for a per-address connection limit"
        }
        "stream" | "mail" => "only the http block is translated: run this part with nginx",
        "geo" | "split_clients" | "geoip_country" | "geoip_city" => {
            "only maps for the Upgrade/Connection idiom are understood: remove it"
        }
        "ssi" | "addition_types" | "autoindex" | "dav_methods" | "mp4" | "flv" | "image_filter"
        | "xslt_stylesheet" | "secure_link" | "mirror" | "slice" | "internal" => {
            "this module has no counterpart in the proxy: remove it"
        }
        _ => return None,
    })
}
