use consul_lock::consul_lock;

trait Jobs {
    #[consul_lock(key = "jobs/<id>")]
    fn run(&self, id: u32) -> Result<u32, consul_lock::Error>;
}

fn main() {}
