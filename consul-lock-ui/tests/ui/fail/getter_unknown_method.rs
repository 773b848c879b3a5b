use consul_lock::consul_lock;

struct Order {
    customer: String,
}

impl Order {
    fn customer_id(&self) -> &str {
        &self.customer
    }
}

#[consul_lock(key = "orders/<order.customer_idd()>")]
fn f(order: &Order) -> Result<(), consul_lock::Error> {
    let _ = order.customer_id();
    Ok(())
}

fn main() {
    let _ = f(&Order { customer: "c".into() });
}
