package live

import (
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"
)

func (h *Hub) saramaConfig() *sarama.Config {
	if h.cfg.Sarama != nil {
		return h.cfg.Sarama
	}
	sc := sarama.NewConfig()
	sc.ClientID = "shop-gateway-live"
	sc.Version = sarama.V2_8_0_0
	sc.Consumer.Return.Errors = true
	sc.Metadata.Full = false
	sc.Net.DialTimeout = 5 * time.Second
	return sc
}

// run connects (retrying) and starts a reader per topic partition.
func (h *Hub) run() {
	defer close(h.done)
	var client sarama.Client
	for {
		var err error
		client, err = sarama.NewClient(h.cfg.Brokers, h.saramaConfig())
		if err == nil {
			break
		}
		h.cfg.Logger.Debug("live: kafka not reachable yet", slog.Any("error", err))
		select {
		case <-h.stop:
			return
		case <-time.After(2 * time.Second):
		}
	}
	h.mu.Lock()
	h.client = client
	h.mu.Unlock()
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		h.cfg.Logger.Error("live: consumer", slog.Any("error", err))
		return
	}
	defer consumer.Close()
	var wg sync.WaitGroup
	for _, f := range h.feeds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.readFeed(client, consumer, f)
		}()
	}
	wg.Wait()
}

// readFeed waits for the topic to exist, then consumes every partition
// from its newest offset and dispatches each record.
func (h *Hub) readFeed(client sarama.Client, consumer sarama.Consumer, f *feed) {
	var parts []int32
	pos := position{}
	for {
		var err error
		if parts, err = client.Partitions(f.topic); err == nil && len(parts) > 0 {
			for _, p := range parts {
				off, err2 := client.GetOffset(f.topic, p, sarama.OffsetNewest)
				if err2 != nil {
					err = err2
					break
				}
				pos[p] = off
			}
			if err == nil {
				break
			}
		}
		h.cfg.Logger.Debug("live: topic not readable yet", slog.String("topic", f.topic), slog.Any("error", err))
		select {
		case <-h.stop:
			return
		case <-time.After(2 * time.Second):
		}
		_ = client.RefreshMetadata(f.topic)
	}
	var pcs []sarama.PartitionConsumer
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(f.topic, p, pos[p])
		if err != nil {
			h.cfg.Logger.Error("live: consume", slog.String("topic", f.topic), slog.Int("partition", int(p)), slog.Any("error", err))
			for _, pc := range pcs {
				pc.AsyncClose()
			}
			return
		}
		pcs = append(pcs, pc)
	}
	f.mu.Lock()
	f.pos, f.ready = pos, true
	f.mu.Unlock()
	h.cfg.Logger.Info("live: reading", slog.String("topic", f.topic), slog.Any("from", pos))
	var wg sync.WaitGroup
	for _, pc := range pcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pc.AsyncClose()
			for {
				select {
				case <-h.stop:
					return
				case err := <-pc.Errors():
					if err != nil {
						h.cfg.Logger.Warn("live: read", slog.String("topic", f.topic), slog.Any("error", err))
					}
				case m := <-pc.Messages():
					if m != nil {
						h.dispatch(f, m)
					}
				}
			}
		}()
	}
	wg.Wait()
}

func headersOf(m *sarama.ConsumerMessage) headers {
	h := make(headers, len(m.Headers))
	for _, r := range m.Headers {
		if r != nil {
			h[string(r.Key)] = string(r.Value)
		}
	}
	return h
}

// dispatch hands one record to the subscribers that want it. A subscriber
// whose buffer is full is cut off (its stream ends with RESOURCE_EXHAUSTED)
// rather than let memory grow or hold up the others.
func (h *Hub) dispatch(f *feed, m *sarama.ConsumerMessage) {
	key := string(m.Key)
	f.mu.Lock()
	defer f.mu.Unlock()
	if m.Offset+1 > f.pos[m.Partition] {
		f.pos[m.Partition] = m.Offset + 1
	}
	var msg proto.Message
	var pos position
	decoded := false
	for s := range f.subs {
		if !s.wants(f, key, m.Partition, m.Offset) {
			continue
		}
		if !decoded {
			decoded = true
			var err error
			if msg, err = f.kind.decode(headersOf(m), m.Value); err != nil {
				h.cfg.Logger.Warn("live: undecodable record skipped", slog.String("topic", f.topic),
					slog.Int("partition", int(m.Partition)), slog.Int64("offset", m.Offset), slog.Any("error", err))
			}
			pos = maps.Clone(f.pos)
		}
		if msg == nil {
			return
		}
		select {
		case s.ch <- event{msg: msg, pos: pos}:
		default:
			delete(f.subs, s)
			close(s.slow)
		}
	}
}
