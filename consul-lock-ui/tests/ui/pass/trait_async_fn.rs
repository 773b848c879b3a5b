use consul_lock::{consul_lock, Error};

trait Worker {
    #[consul_lock(key = "worker/<id>")]
    async fn work(&self, id: u32) -> Result<u32, Error> {
        Ok(id)
    }

    #[consul_lock(key = "worker/sync/<id>")]
    fn work_sync(&self, id: u32) -> Result<u32, Error> {
        Ok(id)
    }
}

struct W;

impl Worker for W {
    #[consul_lock(key = "worker/w/<id>")]
    async fn work(&self, id: u32) -> Result<u32, Error> {
        Ok(id + 1)
    }
}

fn main() {
    let _ = W.work(1);
    let _ = W.work_sync(1);
}
