// Bodies may return borrows of their arguments, also `&mut` ones.
use consul_lock::{consul_lock, Error};

struct Store {
    name: String,
    items: Vec<u32>,
}

impl Store {
    #[consul_lock(key = "store/<self.name>")]
    fn name_mut(&mut self) -> Result<&mut String, Error> {
        Ok(&mut self.name)
    }

    #[consul_lock(key = "store/<self.name>/async")]
    async fn name_mut_async(&mut self) -> Result<&mut String, Error> {
        Ok(&mut self.name)
    }

    #[consul_lock(key = "store/<self.name>/first")]
    fn first(&self) -> Result<Option<&u32>, Error> {
        Ok(self.items.first())
    }
}

#[consul_lock(key = "store/<tag>")]
fn pick<'a>(items: &'a mut [u32], tag: &str) -> Result<&'a mut u32, Error> {
    Ok(&mut items[0])
}

fn main() {
    let mut s = Store { name: "n".into(), items: vec![1] };
    let _ = s.first();
    let _ = s.name_mut();
    let _ = s.name_mut_async();
    let mut v = vec![1];
    let _ = pick(&mut v, "t");
}
