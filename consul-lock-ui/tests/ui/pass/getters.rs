// Placeholders may call methods without arguments (getters), on parameters and on `self`,
// at any depth, returning references, owned values and numbers.
#![deny(warnings)]

use std::future::Future;
use std::pin::Pin;

use consul_lock::{consul_lock, Client, Error};

mod model {
    pub struct Items(Vec<u32>);

    impl Items {
        pub fn first_id(&self) -> String {
            self.0.first().map_or_else(|| "none".to_owned(), u32::to_string)
        }
    }

    pub struct Order {
        customer: String,
        number: u64,
        pub items: Items,
    }

    impl Order {
        pub fn new(customer: &str) -> Self {
            Order {
                customer: customer.to_owned(),
                number: 7,
                items: Items(vec![1, 2]),
            }
        }

        pub fn customer_id(&self) -> &str {
            &self.customer
        }

        pub fn number(&self) -> u64 {
            self.number
        }

        pub fn into_customer(self) -> String {
            self.customer
        }
    }

    pub struct Account {
        owner: u32,
    }

    impl Account {
        pub fn owner_id(&self) -> u32 {
            self.owner
        }
    }

    pub struct Service {
        account: Account,
        name: String,
        pub consul: crate::Client,
    }

    impl Service {
        pub fn new(consul: crate::Client) -> Self {
            Service {
                account: Account { owner: 3 },
                name: "billing".to_owned(),
                consul,
            }
        }

        pub fn account(&self) -> &Account {
            &self.account
        }

        pub fn name(&self) -> &str {
            &self.name
        }
    }
}

use model::{Order, Service};

mod naming {
    pub trait Named {
        fn display_name(&self) -> String;
    }

    impl Named for super::Order {
        fn display_name(&self) -> String {
            format!("order {}", self.customer_id())
        }
    }
}

// A trait method in scope where the attribute is used, and a std method.
use naming::Named;

#[consul_lock(key = "named/<order.display_name()>/<order.customer_id().len()>")]
async fn trait_getter(order: &Order) -> Result<(), Error> {
    let _ = order;
    Ok(())
}

// On a parameter: `&str`, `String` (through a public field) and a number; the owned
// parameter is moved into the body after the key is rendered.
#[consul_lock(key = "orders/<order.customer_id()>/<order.items.first_id()>/<order.number()>")]
async fn owned(order: Order) -> Result<String, Error> {
    Ok(order.into_customer())
}

#[consul_lock(key = "orders/<order.customer_id()>", fail_soft)]
fn sync_by_ref(order: &Order) -> Option<u64> {
    Some(order.number())
}

// Returning a future: the key is rendered when the function is called.
#[consul_lock(key = "orders/<order.customer_id()>/lazy", guard = lock)]
fn lazy(order: Order) -> impl Future<Output = Result<String, Error>> + Send {
    async move { Ok(format!("{}@{}", order.into_customer(), lock.fencing_token())) }
}

trait Charge {
    fn charge<'a>(&'a self, cents: u64) -> Pin<Box<dyn Future<Output = Result<u64, Error>> + Send + 'a>>;
}

impl Service {
    // On `self`, chained; the body borrows `self` again.
    #[consul_lock(key = "accounts/<self.account().owner_id()>/<self.name()>", client = self.consul)]
    async fn on_self(&self) -> Result<&str, Error> {
        Ok(self.name())
    }

    // `self` by value, moved into the body after its getters ran.
    #[consul_lock(key = "accounts/<self.name()>/close", client = self.consul.clone())]
    async fn close(self) -> Result<u32, Error> {
        Ok(self.account().owner_id())
    }

    // Getters on `self` and on a parameter, in a sync method.
    #[consul_lock(key = "svc/<self.name()>/<order.customer_id()>", client = &self.consul)]
    fn sync_method(&self, order: &Order) -> Result<u64, Error> {
        Ok(order.number())
    }
}

// The shape `#[async_trait]` gives a method.
impl Charge for Service {
    #[consul_lock(key = "charges/<self.account().owner_id()>/<cents>", client = self.consul, guard = lock)]
    fn charge<'a>(&'a self, cents: u64) -> Pin<Box<dyn Future<Output = Result<u64, Error>> + Send + 'a>> {
        Box::pin(async move { Ok(cents + u64::from(self.account().owner_id()) + lock.fencing_token()) })
    }
}

fn main() {
    let consul = Client::builder().address("127.0.0.1:1").build().unwrap();
    let service = Service::new(consul);
    let order = Order::new("c-1");
    let _ = sync_by_ref(&order);
    drop(trait_getter(&order));
    let _ = service.sync_method(&order);
    drop(owned(order));
    drop(lazy(Order::new("c-2")));
    drop(service.on_self());
    drop(service.charge(5));
    drop(service.close());
}
