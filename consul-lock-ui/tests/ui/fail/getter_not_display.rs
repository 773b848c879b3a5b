use consul_lock::consul_lock;

struct CustomerId(u64);

struct Order {
    customer: CustomerId,
}

impl Order {
    fn customer_id(&self) -> &CustomerId {
        &self.customer
    }
}

#[consul_lock(key = "orders/<order.customer_id()>")]
fn f(order: &Order) -> Result<u64, consul_lock::Error> {
    Ok(order.customer.0)
}

fn main() {
    let _ = f(&Order { customer: CustomerId(1) });
}
