use consul_lock::{consul_lock, Client, Error};

struct Service {
    consul: Client,
    tenant: String,
    count: u32,
}

impl Service {
    #[consul_lock(key = "svc/<self.tenant>", client = self.consul)]
    async fn by_ref(&self) -> Result<&str, Error> {
        Ok(&self.tenant)
    }

    #[consul_lock(key = "svc/<self.tenant>/count", client = &self.consul)]
    fn by_mut(&mut self) -> Result<u32, Error> {
        self.count += 1;
        Ok(self.count)
    }

    #[consul_lock(key = "svc/<self.tenant>/take", client = self.consul.clone())]
    async fn by_value(self) -> Result<String, Error> {
        Ok(self.tenant)
    }

    #[consul_lock(key = "svc/<self.tenant>/sync-take", client = std::sync::Arc::new(self.consul.clone()))]
    fn by_value_sync(self) -> Result<u32, Error> {
        Ok(self.count)
    }
}

fn main() {
    let mut s = Service {
        consul: Client::builder().address("127.0.0.1:1").build().unwrap(),
        tenant: "t".into(),
        count: 0,
    };
    let _ = s.by_ref();
    let _ = s.by_mut();
}
