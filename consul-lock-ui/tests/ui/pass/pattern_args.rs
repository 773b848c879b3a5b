use consul_lock::{consul_lock, Error};

struct Job {
    id: u64,
    name: String,
}

#[consul_lock(key = "pattern/<a>/<b>/<id>/<job_name>")]
fn run((a, b): (u32, u32), Job { id, name: job_name }: Job) -> Result<u64, Error> {
    let _ = job_name;
    Ok(u64::from(a + b) + id)
}

#[consul_lock(key = "fields/<job.id>/<pair.1>")]
async fn fields(job: &Job, pair: (u8, char)) -> Result<String, Error> {
    Ok(format!("{}{}", job.name, pair.1))
}

fn main() {
    let _ = run((1, 2), Job { id: 3, name: "n".into() });
    let job = Job { id: 3, name: "n".into() };
    let _ = fields(&job, (1, 'x'));
}
