//! The emulator as a program, for local runs of the component:
//! `cargo run -p dbt-cloud-emulator -- [--port 8089]`, then point `dbt_cloud_url` at it.

use dbt_cloud_emulator::{Demo, Emulator};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut port = 8089u16;
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().map(|p| p.parse::<u16>())) {
            ("--port", Some(Ok(p))) => port = p,
            _ => {
                eprintln!("usage: dbt-cloud-emulator [--port PORT]   (default 8089)");
                std::process::exit(1);
            }
        }
    }
    let emulator = match Emulator::start_on(&format!("127.0.0.1:{port}")) {
        Ok(emulator) => emulator,
        Err(error) => {
            eprintln!("cannot listen on 127.0.0.1:{port}: {error}");
            std::process::exit(1);
        }
    };
    emulator.serve_demo();
    println!("dbt Cloud emulator at {}", emulator.base_url());
    println!(
        "account_id {}, job_id {}, #api_key {}",
        Demo::ACCOUNT_ID,
        Demo::JOB_ID,
        Demo::TOKEN
    );
    println!(
        "job {} runs when a run of job {} succeeds",
        Demo::CHAINED_JOB_ID,
        Demo::JOB_ID
    );
    println!("Ctrl-C to stop.");
    loop {
        std::thread::park();
    }
}
