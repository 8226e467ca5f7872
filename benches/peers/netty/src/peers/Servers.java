package peers;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;

/** What both Netty peers share: an NIO server on 127.0.0.1 with a child initializer. */
final class Servers {
    private Servers() {}

    /** Transport name: only "nio" (Debian ships no native epoll library). */
    static void requireNio(String transport) {
        if (!"nio".equals(transport)) {
            System.err.println("only the nio transport is available here, not " + transport);
            System.exit(3);
        }
    }

    /** Serves on 127.0.0.1:port until killed; workers 0 means Netty's default (2 x cores). */
    static void serve(int port, int workers, ChannelInitializer<SocketChannel> init)
            throws InterruptedException {
        EventLoopGroup boss = new NioEventLoopGroup(1);
        EventLoopGroup work = new NioEventLoopGroup(workers);
        try {
            ChannelFuture bound = new ServerBootstrap()
                    .group(boss, work)
                    .channel(NioServerSocketChannel.class)
                    .option(ChannelOption.SO_BACKLOG, 1024)
                    .childOption(ChannelOption.TCP_NODELAY, true)
                    .childHandler(init)
                    .bind("127.0.0.1", port)
                    .sync();
            System.out.println("listening on 127.0.0.1:" + port);
            bound.channel().closeFuture().sync();
        } finally {
            boss.shutdownGracefully();
            work.shutdownGracefully();
        }
    }
}
