//! A throwaway ClickHouse server for the drain benchmark's ClickHouse contenders: started
//! here (so its pid, and so its CPU-seconds, are known), on free loopback ports, with a
//! temporary data directory, stopped on drop.
//!
//! The Kafka-engine peer needs two server settings the test rig does not set: the engine's
//! librdkafka `auto.offset.reset` (ClickHouse's `<kafka>` config section) and
//! `input_format_skip_unknown_fields` in the default profile, so JSONEachRow can read the
//! event objects' fields it has no column for.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct ClickHouseServer {
    child: Child,
    dir: std::path::PathBuf,
    pub url: String,
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl ClickHouseServer {
    /// Starts `clickhouse-server` (Debian's package: `apt-get install clickhouse-server`).
    pub fn start() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("sitetally-drain-ch-{}", std::process::id()));
        for sub in ["tmp", "uf", "fs"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let (http, tcp, inter) = (free_port()?, free_port()?, free_port()?);
        let d = dir.display().to_string();
        let child = Command::new("clickhouse-server")
            .current_dir(&dir)
            .args(["--config-file=/etc/clickhouse-server/config.xml", "--"])
            .args([
                format!("--path={d}/"),
                format!("--tmp_path={d}/tmp/"),
                format!("--user_files_path={d}/uf/"),
                format!("--format_schema_path={d}/fs/"),
                format!("--logger.log={d}/server.log"),
                format!("--logger.errorlog={d}/error.log"),
                format!("--http_port={http}"),
                format!("--tcp_port={tcp}"),
                format!("--interserver_http_port={inter}"),
                "--listen_host=127.0.0.1".into(),
                "--kafka.auto_offset_reset=smallest".into(),
                "--profiles.default.input_format_skip_unknown_fields=1".into(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!("start clickhouse-server: {e} (apt-get install clickhouse-server)")
            })?;
        let server = Self {
            child,
            dir,
            url: format!("http://127.0.0.1:{http}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "ClickHouse did not listen on :{http} within 60 s (see {d}/error.log)"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(server)
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }
}

impl Drop for ClickHouseServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
