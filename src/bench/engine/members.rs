//! Who has seen whom while the clients log in (chat protocol): for every client, which other members of its
//! room it has seen in its user list or in a login broadcast. The bench starts sending only when every client
//! has seen every other member of its room: then every server has every member on its books, even when the
//! clients are spread over the nodes of a cluster and a login on one node reaches the others a little later.
//! Members are told apart by their login names (`b<index>`), not by uids or servers, so a user list that
//! already names a member whose login broadcast comes later counts it once.

/// The rooms of a run and what each client has seen of its own.
#[derive(Debug, Clone)]
pub struct Members {
    clients: usize,
    room_size: usize,
    /// Words of `seen` per client: one bit per member of the largest room.
    words: usize,
    /// Bit `j - room start` of client i's words: client i saw member j.
    seen: Vec<u64>,
    /// Other members each client has seen.
    count: Vec<u32>,
    /// Clients that have seen every other member of their room.
    settled: usize,
}

impl Members {
    /// `clients` clients in rooms of `room_size` consecutive clients (the last room may be smaller).
    pub fn new(clients: usize, room_size: usize) -> Members {
        let room_size = room_size.clamp(1, clients.max(1));
        let words = room_size.div_ceil(64);
        let mut m =
            Members { clients, room_size, words, seen: vec![0; clients * words], count: vec![0; clients], settled: 0 };
        m.settled = (0..clients).filter(|&i| m.room_of(i).1 == 1).count();
        m
    }

    /// The first client and the size of client `i`'s room.
    pub fn room_of(&self, i: usize) -> (usize, usize) {
        let start = i / self.room_size * self.room_size;
        (start, self.room_size.min(self.clients - start))
    }

    /// Records that client `receiver` saw member `member` (its own name, names outside its room and clients
    /// the run does not have are passed over).
    #[inline]
    pub fn saw(&mut self, receiver: usize, member: usize) {
        if receiver >= self.clients || member == receiver {
            return;
        }
        let (start, len) = self.room_of(receiver);
        let Some(bit) = member.checked_sub(start).filter(|&b| b < len) else { return };
        let word = &mut self.seen[receiver * self.words + bit / 64];
        let mask = 1u64 << (bit % 64);
        if *word & mask == 0 {
            *word |= mask;
            self.count[receiver] += 1;
            if self.count[receiver] as usize == len - 1 {
                self.settled += 1;
            }
        }
    }

    /// Clients that have seen every other member of their room.
    pub fn settled(&self) -> usize {
        self.settled
    }

    /// Clients that have not (yet).
    pub fn unsettled(&self) -> usize {
        self.clients - self.settled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_room_settles_when_everyone_saw_everyone() {
        let mut m = Members::new(3, 3);
        assert_eq!((m.settled(), m.unsettled()), (0, 3));
        // Client 2 logs in last: its user list names all three.
        for j in 0..3 {
            m.saw(2, j);
        }
        assert_eq!(m.settled(), 1);
        // Seeing a member twice (user list and a late login broadcast from another node) counts once.
        m.saw(0, 1);
        m.saw(0, 1);
        m.saw(0, 0);
        assert_eq!(m.settled(), 1);
        m.saw(0, 2);
        m.saw(1, 0);
        assert_eq!(m.settled(), 2);
        m.saw(1, 2);
        assert_eq!((m.settled(), m.unsettled()), (3, 0));
    }

    #[test]
    fn rooms_are_runs_of_consecutive_clients() {
        let mut m = Members::new(7, 3);
        assert_eq!((m.room_of(0), m.room_of(4), m.room_of(6)), ((0, 3), (3, 3), (6, 1)));
        // Client 6 is alone in its room: settled from the start.
        assert_eq!(m.settled(), 1);
        // Names from another room, or of clients the run does not have, do not count.
        m.saw(3, 0);
        m.saw(3, 6);
        m.saw(3, 99);
        m.saw(99, 3);
        assert_eq!(m.settled(), 1);
        m.saw(3, 4);
        m.saw(3, 5);
        assert_eq!(m.settled(), 2);
    }

    #[test]
    fn big_rooms_span_several_words() {
        let mut m = Members::new(200, 150);
        for j in (0..150).rev() {
            m.saw(149, j);
        }
        for j in 150..200 {
            m.saw(199, j);
        }
        assert_eq!(m.settled(), 2);
        assert_eq!(Members::new(0, 10).unsettled(), 0);
        assert_eq!(Members::new(5, 0).room_of(4), (4, 1));
    }
}
