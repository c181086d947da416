//! Config files of the programs headroom models, read on their own or for the process
//! that loads them: nginx, pgbouncer.ini, postgresql.conf, redis.conf and
//! sentinel.conf, sysctl.conf.

pub mod nginx;
pub mod pgbouncer_ini;
pub mod pgconf;
pub mod redis_conf;
pub mod sysctl_conf;
